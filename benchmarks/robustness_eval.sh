#!/bin/sh
# Clean and PGD-10 accuracy against eps of the runs from benchmarks/robustness_train.sh, on
# the first 200 test images, and the example grids: the README's robustness pictures.
# Usage: sh benchmarks/robustness_eval.sh mnist|fashion-mnist
set -e
DATASET=$1
case $DATASET in
  mnist) EPS=0,0.05,0.1,0.2,0.3; SHOW=0.2 ;;
  fashion-mnist) EPS=0,0.025,0.05,0.1,0.2; SHOW=0.1 ;;
  *) echo "usage: $0 mnist|fashion-mnist" >&2; exit 2 ;;
esac
python -m shendu.cli viz adversarial --checkpoint runs/viz/$DATASET-standard/best.st \
  --compare runs/viz/$DATASET-pgd/best.st --eps $EPS --show-eps $SHOW --steps 10 \
  --limit 200 --count 8 --out docs/viz/$DATASET
