"""A training script that stops with an error: the channel has fewer rows than it requires."""

import argparse
import glob
import os

import pandas as pd

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--min-rows", type=int, default=1000)
    args, _ = parser.parse_known_args()
    folder = os.environ["SM_CHANNEL_TRAIN"]
    data = pd.concat([pd.read_csv(f, header=None) for f in glob.glob(os.path.join(folder, "*.csv"))])
    print(f"read {len(data)} rows")
    if len(data) < args.min_rows:
        raise ValueError(f"training data has {len(data)} rows, fewer than --min-rows {args.min_rows}")
