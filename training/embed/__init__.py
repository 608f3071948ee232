"""Stage 2, the embeddings: the disk cache every training and evaluation run embeds through
(`cache`), the static embedder's distillation (`static_distill`), the ONNX export and the
converted router's equivalence proof (`onnx_export`, `onnx_convert`), and embedding on a Spark
cluster (`spark`)."""
