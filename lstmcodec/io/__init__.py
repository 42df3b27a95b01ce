"""Images and files in and out: every mode Pillow opens, the image files of folders, and the one routine that
writes every output."""
