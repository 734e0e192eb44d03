"""The classifier module: a network with its compile settings and metrics (a LightningModule's role)."""

import math

import keras


class ClassifierModule:
    """Owns the network, its optimizer, loss and metrics; the trainer only calls `compile` and the network."""

    def __init__(self, network: keras.Model, optimizer, loss, metrics=("accuracy",), jit_compile="auto",
                 steps_per_execution=1, export_network=None):
        self.network = network
        self.export_network = export_network or network  # what checkpoints save: the whole image model
        self.optimizer, self.loss, self.metrics = optimizer, loss, list(metrics)
        self.jit_compile, self.steps_per_execution = jit_compile, steps_per_execution

    def compile(self) -> None:
        self.network.compile(optimizer=self.optimizer, loss=self.loss, metrics=self.metrics,
                             jit_compile=self.jit_compile, steps_per_execution=self.steps_per_execution)

    @property
    def params_total(self) -> int:
        return int(self.export_network.count_params())

    @property
    def params_trainable(self) -> int:
        return int(sum(math.prod(w.shape) for w in self.export_network.trainable_weights))

    def summary(self) -> str:
        lines = []
        self.export_network.summary(print_fn=lambda line, line_break=True: lines.append(line), expand_nested=False)
        return "\n".join(lines) + "\n"
