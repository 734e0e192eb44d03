"""Image folders in, batches for Keras out."""

from catdog.data.datamodule import ImageFolderDataModule
from catdog.data.images import ImageFolder, list_image_folder, load_image

__all__ = ["ImageFolderDataModule", "ImageFolder", "list_image_folder", "load_image"]
