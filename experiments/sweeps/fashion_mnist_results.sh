#!/usr/bin/env bash
# The runs behind the README's supervised and UDA tables on Fashion-MNIST (CPU, smallcnn, 3 seeds
# each), then the tables themselves through the `report` entry. Run from the repository root with
# the project's environment active:
#   bash experiments/sweeps/fashion_mnist_results.sh [supervised|uda|report]  (default: all)
set -euo pipefail
run() {  # run <experiment> <entry> <params>
  mlflow run . -e "$2" --env-manager local --experiment-name "$1" \
      -P dataset=FashionMNIST -P network=smallcnn -P params="$3"
}

ALL="num_labelled_samples=-1;num_validation_samples=5000;batch_size=128;num_epochs=2;learning_rate=0.05"
FEW="num_labelled_samples=100;num_validation_samples=1000;batch_size=32;epoch_length=100;num_epochs=6;learning_rate=0.05"

supervised() {  # `train` on all labels and on 100 labels with each policy, same schedule
  for seed in 0 1 2; do
    for policy in none weak cutout autoaugment randaugment; do
      run fashion-train train "$ALL;policy=$policy;seed=$seed;log_every=50"
      run fashion-train train "$FEW;policy=$policy;seed=$seed;log_every=50"
    done
  done
}

uda() {  # UDA and UDA2 against the supervised baseline: same model, labels, batches and steps
  local ssl="$FEW;policy=cutout;cutout_size=8;log_every=50"
  for seed in 0 1 2; do
    run fashion-uda train "$ssl;seed=$seed"
    run fashion-uda main_uda "$ssl;seed=$seed;unlabelled_batch_size=96;strong_policy=randaugment"
    run fashion-uda main_uda2 "$ssl;seed=$seed;unlabelled_batch_size=96;strong_policy=randaugment"
  done
}

report() {
  python code/report.py --experiment fashion-train --group-by num_labelled_samples,policy \
      --metric test/accuracy --summary final --output-dir reports/fashion-train
  python code/report.py --experiment fashion-uda --group-by entry \
      --metric test/accuracy --summary median_last_k --k 5 --output-dir reports/fashion-uda
}

for part in "${@:-supervised uda report}"; do
  for step in $part; do "$step"; done
done
