"""A Pillow plugin: after `import lstmcodec`, PIL.Image.open("x.lstm") decodes .lstm files and
image.save("x.lstm") encodes them (the default model; `iterations=N`, default 8, and `model=` as save options).
Errors are OSError, as Pillow's own plugins raise them."""
from __future__ import annotations

from PIL import Image, ImageFile

from lstmcodec.format import container


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == container.MAGIC


class LstmImageFile(ImageFile.ImageFile):
    format = "LSTM"
    format_description = "lstmcodec recurrent learned image"

    def _open(self) -> None:
        data = self.fp.read()
        try:
            header, _, _ = container.read_header(data)
        except ValueError as e:
            raise SyntaxError(str(e)) from None
        self._lstm_data = data
        self._size = (header.width, header.height)
        self._mode = header.mode
        self.tile = []

    def load(self):
        if getattr(self, "_lstm_data", None) is not None:
            from lstmcodec.api import decode
            from lstmcodec.errors import CodecError

            try:
                decoded = decode(self._lstm_data)
            except CodecError as e:   # what `except OSError` around Image.open(...).load() expects
                raise OSError(str(e)) from None
            self._lstm_data = None
            self.im = decoded.im
            self.info.update(decoded.info)
        return Image.Image.load(self)


def _save(im: Image.Image, fp, filename) -> None:
    from lstmcodec.api import encode
    from lstmcodec.errors import CodecError

    options = im.encoderinfo
    try:
        data = encode(im, iterations=options.get("iterations", 8), model=options.get("model", "default"))
    except CodecError as e:
        raise OSError(str(e)) from None
    fp.write(data)


def register() -> None:
    Image.register_save(LstmImageFile.format, _save)
    Image.register_open(LstmImageFile.format, LstmImageFile, _accept)
    Image.register_extension(LstmImageFile.format, ".lstm")
    Image.register_mime(LstmImageFile.format, "image/x-lstm")
