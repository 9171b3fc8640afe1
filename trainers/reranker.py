"""Train the KARD reranker (see kard_chain.reranker.trainer for the config fields).

    python trainers/reranker.py --encoder ENCODER --candidates candidates.jsonl --index index/ --output-dir out/
    accelerate launch --num_processes 2 --cpu trainers/reranker.py --config reranker.json
"""

import argparse

from kard_chain.reranker.trainer import RerankerTrainingConfig, train_reranker
from kard_chain.training.config import add_config_flags, config_from_args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, RerankerTrainingConfig)
    train_reranker(config_from_args(RerankerTrainingConfig, parser.parse_args()))


if __name__ == "__main__":
    main()
