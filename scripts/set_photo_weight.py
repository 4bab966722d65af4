"""Set the merge weight of the measured photo (ModelConfig.photo_weight) in a weights file's
model config, e.g. for the shipped model, trained with 1 (Eq. 2 as printed):

    python scripts/set_photo_weight.py src/hdrsyn/weights/small.safetensors --stack-psnr 27.68

The weight is the inverse-variance ratio of a generated exposure's error (from the validation
stack PSNR that training logs) to the photo's 8-bit quantisation error, 1/(255·√12), rounded
down to a power of two (docs/hdr-layer.md).
"""

import argparse
import json
import math

from safetensors import safe_open
from safetensors.torch import load_file, save

from hdrsyn.io import write_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--stack-psnr", type=float, required=True, help="validation, dB")
    args = parser.parse_args()
    error = 10 ** (-args.stack_psnr / 20)
    ratio = (error * 255 * math.sqrt(12)) ** 2
    weight = float(2 ** math.floor(math.log2(ratio)))
    with safe_open(args.weights, "pt") as handle:
        metadata = handle.metadata()
    model = json.loads(metadata["model"]) | {"photo_weight": weight}
    metadata["model"] = json.dumps(model)
    state = load_file(args.weights)
    write_bytes(args.weights, save(state, metadata=metadata), overwrite=True)
    print(f"{args.weights}: photo_weight = {weight:g} (inverse-variance ratio {ratio:.0f})")


if __name__ == "__main__":
    main()
