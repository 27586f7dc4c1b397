"""Inference code that forgot model_fn: the scikit-learn container has no default way to load a model."""


def predict_fn(input_data, model):
    return model.predict(input_data)
