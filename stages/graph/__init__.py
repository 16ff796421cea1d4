"""The model as an ONNX graph: export (native and the seed's allennlp way), onnxsim, int8 forms, graph facts."""
