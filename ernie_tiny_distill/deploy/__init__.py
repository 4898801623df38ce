"""Deployment, one module per job: layout (export directory files), words (serving word splitters),
engines (Paddle Inference, ONNX Runtime), encoding (text -> model inputs through the Task), predictor,
inputs (predict.py's files), service (HTTP), export, onnx_export, quantize (INT8)."""
