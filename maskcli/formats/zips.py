"""Zip archives (npz data, .keras models) read member by member."""

from __future__ import annotations

import struct

LOCAL_HEADER = b"PK\x03\x04"


def member_data_offset(handle, info) -> int | None:
    """Where the bytes of zip member ``info`` start in the open file ``handle``:
    after its local file header. None when no local header is where the zip
    directory points (a damaged or crafted archive)."""
    handle.seek(info.header_offset)
    local = handle.read(30)
    if len(local) < 30 or local[:4] != LOCAL_HEADER:
        return None
    name_length, extra_length = struct.unpack("<2H", local[26:30])
    return info.header_offset + 30 + name_length + extra_length
