"""The data module interface (Lightning's LightningDataModule): subclass it for data of your own."""

from catdog.errors import CatdogError

SPLITS = ("train", "val", "test")


class DataModule:
    """What the Trainer asks of a data module. Override `setup` and the dataloaders your runs use (Keras
    PyDatasets, tf.data datasets or anything Keras' `fit` takes, each a method of `limit_batches`, the
    training one also of `first_epoch`), and set `class_names`, `image_size` and `batch_size` in `setup`.
    The rest has defaults: no class weights, one pass per epoch, no description and no manifest."""

    class_names: list[str] = []
    image_size: tuple = ()
    batch_size: int = 32

    def prepare_data(self):
        """Download or locate the data, once (before `setup`)."""

    def setup(self, stage=None) -> None:
        """List (and, if need be, load) the data; idempotent."""

    def train_dataloader(self, limit_batches=None, first_epoch=0):
        raise NotImplementedError

    def val_dataloader(self, limit_batches=None):
        raise NotImplementedError

    def test_dataloader(self, limit_batches=None):
        raise NotImplementedError

    def predict_dataloader(self):
        raise NotImplementedError

    def num_images(self, split: str) -> int:
        """How many images `split` (train, val or test) holds; the Trainer skips a test of none."""
        raise NotImplementedError

    def sizes(self) -> dict[str, int]:
        """{split: images} as listed, for the line that opens a run (before anything is decoded)."""
        sizes = {}
        for split in SPLITS:
            try:
                sizes[split] = self.num_images(split)
            except (NotImplementedError, KeyError):  # a data module without that split
                pass
        return sizes

    def steps_per_epoch(self, limit_batches=None):
        """None: the training loader is finite, one pass per epoch."""
        return None

    def class_weights(self) -> dict[int, float] | None:
        """Keras' `class_weight` for `fit`: {label: weight}, or None."""
        return None

    def describe(self) -> dict:
        """What the run's metrics record about the data."""
        return {}

    def state_dict(self) -> dict:
        """What a checkpoint keeps of the data module (JSON-able), as Lightning's: given back on a resume."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def signature(self) -> dict:
        """The settings that shape what the model sees ({key: JSON value}): a checkpoint records them, and a
        resume with other values is refused. None here: a data module of your own may name its own."""
        return {}

    def write_manifest(self, path) -> None:
        """Record in `path` what the run trains on (the Trainer calls it before the first epoch)."""


def check_datamodule(datamodule, call: str, methods) -> None:
    """A one-paragraph error unless `datamodule` is a DataModule that implements `methods`."""
    if not isinstance(datamodule, DataModule):
        raise CatdogError(f"Trainer.{call} takes a catdog.data.DataModule (subclass it for data of your own), not "
                          f"{type(datamodule).__name__}.")
    missing = [m for m in methods if getattr(type(datamodule), m, None) is getattr(DataModule, m)]
    if missing:
        raise CatdogError(f"{type(datamodule).__name__} does not implement {', '.join(missing)}, which "
                          f"Trainer.{call} needs: define them in your DataModule subclass.")
