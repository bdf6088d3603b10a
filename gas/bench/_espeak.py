"""Offline speech with the ``espeakng-loader`` wheel, run as a child process by :mod:`gas.bench.synth`.

The wheel ships ``libespeak-ng.so`` and its ``espeak-ng-data`` but no ``espeak-ng`` program, so
the library is driven through ``ctypes`` (the classic ``espeak_*`` API in synchronous mode). It
runs in its own process: a native crash or hang cannot take the caller down, and the caller
applies a timeout. Usage::

    python -m gas.bench._espeak OUT_DIR < jobs.json

``jobs.json`` is a list of ``{"text", "voice", "rate", "pitch"}``; job ``i`` is written to
``OUT_DIR/i.pcm`` (mono int16, native endian). The sample rate is printed as JSON on stdout.
"""

from __future__ import annotations

import ctypes
import json
import sys
from pathlib import Path

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
CHARS_UTF8 = 1
PARAM_RATE, PARAM_PITCH = 1, 3


def main(argv: list[str]) -> int:
    import espeakng_loader

    out = Path(argv[1])
    jobs = json.load(sys.stdin)
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.restype = ctypes.c_int
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
    if rate <= 0:
        print(json.dumps({"error": f"espeak_Initialize returned {rate}"}))
        return 1
    chunks: list[bytes] = []
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def on_audio(wav, n, _events):  # called synchronously from espeak_Synth
        if n > 0:
            chunks.append(ctypes.string_at(wav, n * 2))
        return 0

    callback = callback_type(on_audio)  # keep a reference for the library's lifetime
    lib.espeak_SetSynthCallback(callback)
    for i, job in enumerate(jobs):
        if lib.espeak_SetVoiceByName(str(job.get("voice", "en")).encode()) != 0:
            lib.espeak_SetVoiceByName(b"en")
        lib.espeak_SetParameter(PARAM_RATE, int(job.get("rate", 170)), 0)
        lib.espeak_SetParameter(PARAM_PITCH, int(job.get("pitch", 50)), 0)
        text = str(job["text"]).encode("utf-8") + b"\0"
        chunks.clear()
        lib.espeak_Synth(text, len(text), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        (out / f"{i}.pcm").write_bytes(b"".join(chunks))
    lib.espeak_Terminate()
    print(json.dumps({"sample_rate": rate, "count": len(jobs)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
