"""``keras.preprocessing.image``: the image file utilities of ``keras.utils``."""

from kcompile.utils.image_utils import array_to_img, img_to_array, load_img, save_img

__all__ = ["array_to_img", "img_to_array", "load_img", "save_img"]
