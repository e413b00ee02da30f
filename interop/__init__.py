"""Working with other code: the official PyTorch models, and exports for serving.

    pth.py            a reader of PyTorch .pth files that needs no torch (restricted unpickler)
    torch_weights.py  official state dicts -> this project's variables
    exporting.py      SavedModel, frozen graph, TFLite and ONNX exports (export.py)
    to_onnx.py        frozen graphs converted to ONNX by tf2onnx (optional), what it cannot
                      convert rewritten
"""
