"""`dlp keys`: the quarantine keys — status, rotation, and re-encryption of older items."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dlp.store.cliutil import actor, add_common_args, guarded, opened_store


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("keys", help="quarantine key status, rotation and re-encryption")
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    status = sub.add_parser("status", help="current key id, retired keys, originals per key")
    add_common_args(status)
    status.set_defaults(func=guarded(_status))
    rotate = sub.add_parser("rotate", help="retire the current key file's key and create a new current key")
    rotate.add_argument("--reencrypt", action="store_true", help="then re-encrypt every item under the new key")
    add_common_args(rotate)
    rotate.set_defaults(func=guarded(_rotate))
    reencrypt = sub.add_parser("reencrypt", help="re-encrypt items still under a retired key")
    add_common_args(reencrypt)
    reencrypt.set_defaults(func=guarded(_reencrypt))


def _status(args: argparse.Namespace) -> int:
    from dlp.store.keyfiles import key_file, retired_dir

    with opened_store(args) as store:
        info = {"current": store.keyring.current_id, "known": sorted(store.keyring.ids),
                "originals_per_key": store.key_usage(), "key_file": str(key_file(store.settings)),
                "retired_dir": str(retired_dir(store.settings))}
    if args.format == "json":
        print(json.dumps(info))
    else:
        print(f"current key {info['current']} ({info['key_file']})")
        for kid in info["known"]:
            if kid != info["current"]:
                print(f"retired key {kid}: {info['originals_per_key'].get(kid, 0)} originals still need it")
        print(f"originals under the current key: {info['originals_per_key'].get(info['current'], 0)}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from dlp.cli import settings_from_args
    from dlp.store.keyfiles import rotate_key_file

    with opened_store(args):  # the store must open (all keys usable) before anything is rotated
        pass
    old, new = rotate_key_file(settings_from_args(args))
    print(f"retired key {old}; new current key {new}")
    if args.reencrypt:
        return _reencrypt(args)
    print("restart `dlp serve` to encrypt new items under the new key; `dlp keys reencrypt` re-encrypts old ones")
    return 0


def _reencrypt(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        count = store.reencrypt(actor(args))
        current = store.keyring.current_id
    print(f"re-encrypted {count} originals under key {current}")
    return 0
