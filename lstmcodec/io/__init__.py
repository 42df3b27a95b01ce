"""Images and files in and out: every mode Pillow opens, and the one routine that writes every output."""
