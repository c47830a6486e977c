#!/usr/bin/env bash
# The runs behind the README's RealMix tables (Fashion-MNIST, CPU, smallcnn), then the tables
# through the `report` entry. Run from the repository root with the project's environment
# active:  bash experiments/sweeps/fashion_mnist_realmix.sh [main|ramp|mismatch|report]
# (default: all)
set -euo pipefail
run() {  # run <experiment> <entry> <params>
  mlflow run . -e "$2" --env-manager local --experiment-name "$1" \
      -P dataset=FashionMNIST -P network=smallcnn -P params="$3"
}
# 100 labels, batches of 32 labelled images, one evaluation per 100 steps; the final figure is the
# median test accuracy of the last 3 evaluations (EMA weights for the RealMix family).
FEW="num_labelled_samples=100;num_validation_samples=1000;batch_size=32;epoch_length=100;log_every=50"
REALMIX_FAMILY="$FEW;median_of_last=3"

main() {  # RealMix against its supervised baselines and UDA2, 600 steps, 3 seeds
  for seed in 0 1 2; do
    run fashion-realmix fs_baseline "$REALMIX_FAMILY;num_epochs=6;seed=$seed"
    run fashion-realmix fs_mixup "$REALMIX_FAMILY;num_epochs=6;seed=$seed"
    run fashion-realmix realmix "$REALMIX_FAMILY;num_epochs=6;seed=$seed"
    run fashion-realmix main_uda2 "$FEW;num_epochs=6;seed=$seed;policy=cutout;cutout_size=8;unlabelled_batch_size=96;strong_policy=randaugment;learning_rate=0.05"
  done
}

ramp() {  # RealMix with w_match ramped up over 40% of the 600 steps instead of the first 1/64
  for seed in 0 1 2; do
    run fashion-realmix realmix "$REALMIX_FAMILY;num_epochs=6;seed=$seed;w_match_rampup=0.4"
  done
}

mismatch() {
  # Class mismatch: 6 labelled classes (2..7); the unlabelled images come from 4 classes of which
  # 0, 50 or 100% are not among the labelled ones. RealMix without and with masking the least
  # confident half of the unlabelled batch, against the supervised baselines on the same 6
  # classes; 400 steps, 2 seeds (the CPU budget of this table).
  local budget="$REALMIX_FAMILY;num_epochs=4"
  for seed in 0 1; do
    run fashion-mismatch fs_baseline "$budget;seed=$seed;labelled_classes=2,3,4,5,6,7"
    run fashion-mismatch fs_mixup "$budget;seed=$seed;labelled_classes=2,3,4,5,6,7"
    for mismatch in 0 50 100; do
      for mask in 0 0.5; do
        run fashion-mismatch realmix \
            "$budget;seed=$seed;preset=realmix_cifar6_mismatch_$mismatch;percent_mask=$mask"
      done
    done
  done
}

report() {
  python code/report.py --experiment fashion-realmix --group-by entry,w_match_rampup \
      --metric test/accuracy --summary median_last_k --k 3 --output-dir reports/fashion-realmix
  python code/report.py --experiment fashion-mismatch \
      --group-by entry,unlabelled_classes,percent_mask \
      --metric test/accuracy --summary median_last_k --k 3 --output-dir reports/fashion-mismatch
}

for part in "${@:-main ramp mismatch report}"; do
  for step in $part; do "$step"; done
done
