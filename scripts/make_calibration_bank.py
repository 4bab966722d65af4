"""Write the colour-edge calibration's curve bank into the package (about 1 s to compute, so
it is shipped; tests/test_calibration.py checks the shipped file against a fresh computation).

python scripts/make_calibration_bank.py
"""

from pathlib import Path

from safetensors.torch import save

from hdrsyn.calibration import BANK_FILE, build_bank
from hdrsyn.io import write_bytes

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hdrsyn"

if __name__ == "__main__":
    bank = {k: v.contiguous() for k, v in build_bank().items()}
    write_bytes(PACKAGE / BANK_FILE, save(bank, metadata={"made-by": Path(__file__).name}),
                overwrite=True)  # fmt: skip
    print(f"wrote {PACKAGE / BANK_FILE}")
