#!/usr/bin/env python3
"""Runs the real selfie_segmentation.tflite through mediapipe's own graph (mediapipe==0.10.21,
in its own venv because it pins numpy<2): ``mp_teacher.py in.npy out.npy``.

in.npy: uint8 [N, 256, 256, 3] RGB. out.npy: float32 [N, 256, 256] P(person).
The solution graph (ImageToTensor -> TFLite InferenceCalculator with MediaPipe's custom-op
resolver -> TensorsToSegmentation) resizes the frame to the model's 256x256 input and the mask
back to the frame's size; with 256x256 frames both resizes are the identity, so the output is the
network's own sigmoid map.
"""
import sys

import numpy as np
import mediapipe as mp

imgs = np.load(sys.argv[1])
assert imgs.dtype == np.uint8 and imgs.shape[1:] == (256, 256, 3), imgs.shape
out = np.empty(imgs.shape[:3], np.float32)
with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
    for i, im in enumerate(imgs):
        out[i] = seg.process(np.ascontiguousarray(im)).segmentation_mask
np.save(sys.argv[2], out)
