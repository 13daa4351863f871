#!/bin/sh
# Standard vs PGD-adversarially-trained LeNet-5 (ReLU) on one dataset: the runs behind the
# README's robust-accuracy figure. Usage: sh benchmarks/robustness_train.sh mnist|fashion-mnist
# MNIST trains against eps 0.3 (Madry et al.'s budget), Fashion-MNIST against eps 0.1.
# The PGD run is small (4000 images, 2 epochs, at most 25 minutes: the machine was shared);
# if the time runs out, best.st of the first epoch remains.
set -e
DATASET=$1
case $DATASET in
  mnist) EPS=0.3; DATA="--data-dir /work/shared/data/mnist" ;;
  fashion-mnist) EPS=0.1; DATA="" ;;
  *) echo "usage: $0 mnist|fashion-mnist" >&2; exit 2 ;;
esac
COMMON="--dataset $DATASET $DATA --model lenet5 --model-config activation=relu"
python -m shendu.cli train $COMMON --epochs 1 --out runs/viz/$DATASET-standard
timeout 1500 python -m shendu.cli train $COMMON --epochs 2 --limit-train 4000 --adversarial-eps $EPS \
  --adversarial-steps 7 --adversarial-ramp 60 --out runs/viz/$DATASET-pgd
