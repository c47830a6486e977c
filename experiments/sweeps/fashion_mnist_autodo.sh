#!/usr/bin/env bash
# The runs behind the README's AutoDO table (Fashion-MNIST, CPU, smallcnn, 3 runs each), then the
# tables through the `report` entry. Run from the repository root with the project's environment
# active:  bash experiments/sweeps/fashion_mnist_autodo.sh [runs|report]  (default: both)
set -euo pipefail
run() {  # run <params>
  mlflow run . -e autodo --env-manager local --experiment-name fashion-autodo \
      -P dataset=FashionMNIST -P network=smallcnn -P params="$1"
}
# 4000 clean training images drawn before the bias, 1000 clean validation images; 10 epochs of
# network training for every method; with HES the last 6 of them each start with a hyper pass.
BUDGET="num_labelled_samples=4000;num_validation_samples=1000;batch_size=64;num_epochs=10;warm_epochs=4;learning_rate=0.05;eval_every=2;log_every=50"
METHODS=("aug_model=NONE" "aug_model=RAND" "aug_model=AUTO"
         "aug_model=SEP;loss_model=BOTH;hyper_opt=HES")

runs() {
  for bias in "ir=10;nr=0" "ir=1;nr=0.1" "ir=10;nr=0.1"; do
    for r in 0 1 2; do
      for method in "${METHODS[@]}"; do
        run "$BUDGET;$bias;run=$r;$method"
      done
    done
  done
  # learned weights alone, where there are noisy labels to find
  for bias in "ir=1;nr=0.1" "ir=10;nr=0.1"; do
    for r in 0 1 2; do
      run "$BUDGET;$bias;run=$r;aug_model=NONE;loss_model=WGHT;hyper_opt=HES"
    done
  done
}

report() {
  # test accuracy of the model chosen on the clean validation split
  python code/report.py --experiment fashion-autodo \
      --group-by imbalance_ratio,noise_ratio,aug_model,loss_model \
      --metric test/accuracy --summary best_validation --output-dir reports/fashion-autodo
  # how well the learned weights rank clean above noisy labels, after the last hyper pass
  python code/report.py --experiment fashion-autodo --filter "hyper_opt=HES;noise_ratio=0.1" \
      --group-by imbalance_ratio,noise_ratio,aug_model,loss_model --metric noisy_weight_auc --summary final \
      --no-percent --output-dir reports/fashion-autodo-auc
}

for step in ${@:-runs report}; do "$step"; done
