import socket
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from catdog.data import ImageFolderDataModule
from catdog.errors import CatdogError
from catdog.models import build_model

from helpers import make_image_folders


class CountingHandler(SimpleHTTPRequestHandler):
    requests = 0

    def do_GET(self):
        type(self).requests += 1
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A static file server on 127.0.0.1 over tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    CountingHandler.requests = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(CountingHandler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def zip_tree(src_root, zip_path, prefix, extra=()):
    with zipfile.ZipFile(zip_path, "w") as z:
        for f in sorted(src_root.rglob("*.jpg")):
            z.write(f, f"{prefix}/{f.relative_to(src_root)}")
        for name, data in extra:
            z.writestr(name, data)


def test_dataset_downloads_once_from_its_url(server, tmp_path):
    www, base = server
    zip_tree(make_image_folders(tmp_path / "src"), www / "cats_and_dogs_filtered.zip", "cats_and_dogs_filtered")
    for _ in range(2):
        dm = ImageFolderDataModule(url=f"{base}/cats_and_dogs_filtered.zip", download_dir=str(tmp_path / "keras"),
                                   image_size=(32, 32), batch_size=4)
        dm.setup()
        assert dm.label_counts() == {"cats": 12, "dogs": 12}
    assert CountingHandler.requests == 1


def test_archive_entries_escaping_the_target_are_refused(server, tmp_path):
    www, base = server
    evil = [("../../escaped.txt", "pwned"), ("/tmp/absolute_escape_catdog.txt", "pwned")]
    zip_tree(make_image_folders(tmp_path / "src"), www / "data.zip", "data", extra=evil)
    dm = ImageFolderDataModule(url=f"{base}/data.zip", download_dir=str(tmp_path / "keras"), image_size=(32, 32))
    with pytest.warns(UserWarning, match="Skipping invalid path"):
        dm.setup()
    assert not list(tmp_path.rglob("escaped.txt"))
    assert dm.num_images("train") == 24


def test_offline_dataset_download_names_dataset_root(tmp_path):
    dm = ImageFolderDataModule(url=f"{closed_port_url()}/cats_and_dogs_filtered.zip",
                               download_dir=str(tmp_path / "keras"))
    with pytest.raises(CatdogError, match="dataset.root") as refused:
        dm.setup()
    for named in ("cats_and_dogs_filtered.zip", "CATDOG_DATA", "model.backbone.weights", "CATDOG_WEIGHTS",
                  "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5"):
        assert named in str(refused.value)


def test_offline_imagenet_weights_name_model_backbone_weights(tmp_path):
    with pytest.raises(CatdogError, match="model.backbone.weights"):
        build_model("mobilenet", (96, 96), 2, ["model.backbone.weights=imagenet",
                                               f"model.backbone.weights_url={closed_port_url()}/w/"])
