"""shendu.vision: computer vision on shendu, laid out as torchvision is (Concept: N6.1).

Sub-packages are imported on demand: ``shendu.vision.ops`` (boxes, NMS, RoI pooling),
``shendu.vision.metrics`` (COCO mAP, mIoU), ``shendu.vision.datasets`` (the MNIST scenes),
``shendu.vision.detection`` and ``shendu.vision.segmentation`` (models).
"""
