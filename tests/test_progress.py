import logging
import time

from catdog.utils.progress import Progress, working


def test_a_short_step_is_silent_and_a_long_one_reports_as_it_goes_and_at_its_end(caplog):
    caplog.set_level(logging.INFO, "catdog")
    quick = Progress("Decoding", 10)
    quick.advance(10)
    quick.close()
    assert not caplog.records

    slow = Progress("Decoding", 4, first=0.05, every=0.05)
    for _ in range(3):
        time.sleep(0.06)
        slow.advance()
    slow.advance()
    slow.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("Decoding: 1 of 4 images (25%)") and "left" in lines[0]
    assert len(lines) == 4 and lines[-1].startswith("Decoding: 4 images in")


def test_a_step_that_cannot_count_its_work_says_it_is_still_running(caplog):
    caplog.set_level(logging.INFO, "catdog")
    with working("Exporting", first=0.05, every=0.05):
        time.sleep(0.18)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) >= 3 and lines[0].startswith("Exporting (") and lines[-1].startswith("Exporting: done in")
    caplog.clear()
    with working("Exporting"):
        pass
    assert not caplog.records


def test_the_decode_pass_counts_every_file_readable_or_not(tmp_path):
    import numpy as np

    from catdog.data.cache import decode_into
    from helpers import make_image

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        make_image(paths[-1], i % 2, np.random.default_rng(i))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    paths = [str(p) for p in [*paths, tmp_path / "bad.jpg"]]
    rows = np.zeros((4, 8, 8, 3), np.uint8)

    class Store:
        def write(self, i, batch):
            rows[i: i + len(batch)] = batch

    counted = Progress("Decoding", 4)
    bad = decode_into(paths, (8, 8), Store(), progress=counted)
    assert counted.done == 4 and list(bad) == [paths[3]] and rows[:3].any()
