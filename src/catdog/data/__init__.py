"""Data modules: image folders, manifests and file lists in, batches for Keras out."""

from catdog.data.base import DataModule
from catdog.data.datamodule import ImageFolderDataModule
from catdog.data.files import ImageFilesDataModule
from catdog.data.images import ImageFolder, list_image_folder, load_image

__all__ = ["DataModule", "ImageFilesDataModule", "ImageFolder", "ImageFolderDataModule", "list_image_folder",
           "load_image"]
