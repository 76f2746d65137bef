"""Face-level processing shared by the beauty, swap and enhance stages.

Alignment to the ArcFace/FFHQ templates, the ONNX face models (ArcFace embeddings, inswapper,
GFPGAN/GPEN/CodeFormer) and pasting a processed crop back into the frame.
"""
