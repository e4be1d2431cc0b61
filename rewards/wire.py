"""The reward server's wire format: msgpack maps in ZMQ multipart frames `[payload, mac]`; no pickle anywhere.

    request  {"v": 1, "id": str, "ts": float, "method": str, "items": [...]}
    reply    {"v": 1, "id": str | None, "ok": bool, "result": [...] | None, "error": str | None}

`mac` is HMAC-SHA256(secret, payload) when a shared secret is set (required by the server whenever it binds
beyond loopback), else empty. A signed request whose timestamp is more than `max_age_s` off is refused (a
replayed capture goes stale). Decoding never trusts the peer: frame count, sizes, MAC, msgpack limits and the
schema are checked, and every failure is a `WireError` with a one-line reason. Images travel as
{"shape": [H, W, C], "data": bytes} of uint8.
"""

from __future__ import annotations

import hashlib
import hmac
import math

import msgpack
import numpy as np

VERSION = 1
MAX_ID = 64
MAX_METHOD = 64


class WireError(ValueError):
    """A frame that cannot be trusted or understood (the reply to it says why)."""


class AuthError(WireError):
    """A frame that is not signed with the shared secret: it gets no reply at all."""


def mac(payload: bytes, secret: bytes | None) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest() if secret else b""


def encode(message: dict, secret: bytes | None) -> list[bytes]:
    payload = msgpack.packb(message, use_bin_type=True)
    return [payload, mac(payload, secret)]


def decode(frames: list[bytes], secret: bytes | None, max_bytes: int) -> dict:
    """A verified msgpack map from `[payload, mac]`; WireError otherwise."""
    if len(frames) != 2:
        error = AuthError if secret else WireError
        raise error(f"expected 2 frames (payload, mac), got {len(frames)}")
    payload, signature = frames
    if secret and not hmac.compare_digest(signature, mac(payload, secret)):  # before anything else is looked at
        raise AuthError("bad or missing HMAC signature")
    if len(payload) > max_bytes:
        raise WireError(f"payload of {len(payload)} bytes exceeds the limit of {max_bytes}")
    try:
        message = msgpack.unpackb(payload, raw=False, strict_map_key=True)  # its limits follow len(payload)
    except Exception as e:  # msgpack raises many kinds on hostile bytes; all mean the same here
        raise WireError(f"payload is not msgpack ({type(e).__name__})") from None
    if not isinstance(message, dict) or message.get("v") != VERSION:
        raise WireError(f"expected a msgpack map with v={VERSION}")
    return message


def _text(message: dict, key: str, limit: int) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise WireError(f"'{key}' must be a string of 1..{limit} characters")
    return value


def check_request(message: dict, signed: bool, max_items: int, max_age_s: float, now: float) -> tuple[str, str, list]:
    """(id, method, items) of a well-formed request."""
    request_id = _text(message, "id", MAX_ID)
    method = _text(message, "method", MAX_METHOD)
    items = message.get("items")
    if not isinstance(items, list) or not 0 < len(items) <= max_items:
        raise WireError(f"'items' must be a list of 1..{max_items} items")
    ts = message.get("ts")
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts):
        raise WireError("'ts' must be a finite number (seconds since the epoch)")
    if signed and abs(now - ts) > max_age_s:
        raise WireError(f"request timestamp is {now - ts:.0f} s off (limit {max_age_s:.0f} s): replayed or clock skew")
    return request_id, method, items


def reply(request_id: str | None, result: list | None = None, error: str | None = None) -> dict:
    return {"v": VERSION, "id": request_id, "ok": error is None, "result": result, "error": error}


def encode_image(image: np.ndarray) -> dict:
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"images travel as (H, W, C) uint8, got {image.dtype} {image.shape}")
    return {"shape": list(image.shape), "data": image.tobytes()}


def decode_image(item: object, max_pixels: int = 4096 * 4096) -> np.ndarray:
    if not isinstance(item, dict) or not isinstance(item.get("data"), bytes):
        raise WireError("an image must be {'shape': [H, W, C], 'data': bytes}")
    shape = item.get("shape")
    if (not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape)
            or shape[2] not in (1, 3, 4) or shape[0] * shape[1] > max_pixels):
        raise WireError(f"bad image shape {shape!r}: expected [H, W, C] with C in 1, 3, 4")
    if len(item["data"]) != shape[0] * shape[1] * shape[2]:
        raise WireError(f"image data has {len(item['data'])} bytes, its shape needs {shape[0] * shape[1] * shape[2]}")
    return np.frombuffer(item["data"], np.uint8).reshape(shape)
