"""A scanner device's identity: its own Ed25519 key, made on the device and never copied off.

`DATA_DIR/device.key` (0600) and `device.key.pub`; `DATA_DIR/device.json` names the device (its
participant id in the ledger). An admin registers the public key with role `scanner`; from
then on the ledger accepts scans signed by it, and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lotledger.ledger.core.validation import is_participant_id
from lotledger.signing.keys import SigningKey

KEY, PUB, CONFIG = "device.key", "device.key.pub", "device.json"


class NotEnrolled(Exception):
    pass


@dataclass(frozen=True)
class Device:
    device_id: str
    key: SigningKey


def enroll(data_dir: Path, device_id: str) -> Path:
    """Make this device's key. Refuses to replace an existing one (its scans are signed by it).
    Returns the public key file to hand to an admin."""
    if not is_participant_id(device_id):
        raise ValueError(f"device id {device_id!r} must look like a participant id: lowercase, digits, . _ : -")
    data_dir.mkdir(parents=True, exist_ok=True)
    if (data_dir / KEY).exists():
        raise FileExistsError(f"{data_dir / KEY} exists: this device is enrolled already")
    key = SigningKey.generate()
    key.save_pair(data_dir / KEY)
    (data_dir / CONFIG).write_text(json.dumps({"device_id": device_id}) + "\n")
    return data_dir / PUB


def load(data_dir: Path) -> Device:
    try:
        config = json.loads((data_dir / CONFIG).read_text())
        return Device(config["device_id"], SigningKey.load(data_dir / KEY))
    except FileNotFoundError as e:
        raise NotEnrolled(f"{data_dir} holds no device key: run `lotledger-scan enroll` first") from e
