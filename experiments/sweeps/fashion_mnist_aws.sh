#!/usr/bin/env bash
# The runs behind the README's AWS AutoAugment table (Fashion-MNIST, CPU, smallcnn): a small
# search, then `train` with the learned policy against the uniform policy, no augmentation and
# AutoAugment, 3 seeds each, and the table through the `report` entry. Run from the repository root
# with the project's environment active:  bash experiments/sweeps/fashion_mnist_aws.sh
set -euo pipefail
export MLFLOW_EXPERIMENT_NAME=fashion-aws
DATA="num_labelled_samples=5000;num_validation_samples=1000;batch_size=64;cutout_size=8"
# stage 1: 6 epochs of 50 steps under the uniform policy; stage 2: 20 loops of 2 evaluations, each
# fine-tuning a copy for 2 epochs of 50 steps and scoring it on the 1000 held-out images
SEARCH="$DATA;epoch_length=50;num_epochs=6;finetune_epochs=2;search_loops=20;evaluations_per_loop=2;log_every=50"
# the same images, 8 epochs of 78 steps
TRAIN="$DATA;num_epochs=8;log_every=50"

search_log=$(mktemp)
{ time mlflow run . -e aws_search --env-manager local -P dataset=FashionMNIST \
      -P network=smallcnn -P params="$SEARCH"; } 2>&1 | tee "$search_log"
search_run=$(grep -o "Run (ID '[0-9a-f]*') succeeded" "$search_log" | tail -1 | grep -o "[0-9a-f]\{32\}")
echo "search run: $search_run; its CPU time is the user + sys above"
mkdir -p reports/fashion-aws
uniform=reports/fashion-aws/uniform_policy.json
python -c "import sys; sys.path.insert(0, 'code')
from augssl.search.aws import PairPolicy, save_policy
save_policy(PairPolicy(), '$uniform')"

for seed in 0 1 2; do
  for policy in "aws:$search_run" "aws:$uniform" none autoaugment; do
    mlflow run . -e train --env-manager local -P dataset=FashionMNIST -P network=smallcnn \
        -P params="$TRAIN;seed=$seed;policy=$policy"
  done
done

python code/report.py --experiment fashion-aws --filter "entry=train" --group-by policy \
    --metric test/accuracy --summary best_validation --output-dir reports/fashion-aws
