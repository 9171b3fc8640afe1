"""Train the KARD student, or a baseline (see kard_chain.student.trainer for the config fields).

    python trainers/student.py --method kard --model google/flan-t5-base --dataset strategyqa \
        --data-dir data/strategyqa --rationales rationales.jsonl --index index/ --output-dir student/
    accelerate launch --num_processes 2 trainers/student.py --config student.json
"""

import argparse

from kard_chain.student.trainer import StudentTrainingConfig, train_student
from kard_chain.training.config import add_config_flags, config_from_args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, StudentTrainingConfig)
    train_student(config_from_args(StudentTrainingConfig, parser.parse_args()))


if __name__ == "__main__":
    main()
