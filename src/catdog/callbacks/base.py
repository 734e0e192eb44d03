"""The callback base class: a Keras callback that the Trainer also tells about the run."""

import keras


class Callback(keras.callbacks.Callback):
    """A Keras callback with Lightning's extras: `trainer` (set by the Trainer before fit) and its own state,
    saved in every checkpoint and given back on a resume."""

    trainer = None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
