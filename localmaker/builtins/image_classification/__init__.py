"""SageMaker's built-in Image Classification (MXNet) image, ``image-classification:1``, run locally.

The contract is the real algorithm's (developer guide "Image Classification - MXNet", its
hyperparameters page, and the image-classification-lst-format notebook):

* Training in the *image format*: channels ``train`` and ``validation`` hold JPEG/PNG files,
  ``train_lst`` and ``validation_lst`` one ``.lst`` file each (``index<TAB>label<TAB>path``, paths
  relative to the image channel), ContentType ``application/x-image`` (or ``image/jpeg`` /
  ``image/png``). RecordIO (``application/x-recordio``, ``.rec``) and augmented manifests
  (``RecordWrapperType: RecordIO``) are MXNet formats this image cannot read: they fail with a
  ClientError that says what is supported. An optional ``model`` channel (incremental training)
  takes a ``model.tar.gz`` this algorithm produced, with the same ``num_classes`` / ``image_shape``.
* Hyperparameters: all documented names are accepted and validated with their documented
  ranges; ``num_classes`` and ``num_training_samples`` are required (1P wording). Images are
  decoded to ``image_shape`` (channels,height,width): with ``resize`` the shorter side is scaled
  to it and the centre cropped, otherwise the image is resized to height x width.
  ``num_training_samples`` only shapes schedules on AWS; a mismatch with the train list is logged
  as a warning. Labels outside ``[0, num_classes)`` fail the job naming file and line.
* ``use_pretrained_model=1`` fails with a ClientError: the ImageNet-pretrained ResNet weights are
  not available offline, and training from scratch instead would silently give a different model
  than the one asked for. ``multi_label=1`` (which needs augmented-manifest multi-hot labels) is
  refused the same way. ``num_layers``, ``precision_dtype`` and ``kv_store`` are validated and
  logged, they do not change the local network.
* Logs as the real one (``Epoch[0] Batch [20]\tSpeed: ... samples/sec\taccuracy=...``,
  ``Epoch[0] Train-accuracy=...``, ``Epoch[0] Time cost=...``, ``Epoch[0] Validation-accuracy=...``,
  ``Storing the best model with validation accuracy: ...``, ``Saved checkpoint to "..."``, and
  ``Train-/Validation-top_k_accuracy_<k>`` with ``top_k``); images.yaml's metric definitions read them.

The network is NOT ResNet. It is a small convolutional net in numpy, trained by the documented
optimizers (``sgd``/``nag`` with ``momentum`` and ``weight_decay``, ``adam`` with ``beta_1``/``beta_2``/
``eps``, ``rmsprop`` with ``gamma``/``eps``) for ``epochs`` over ``mini_batch_size`` batches, with the
``lr_scheduler_step``/``lr_scheduler_factor`` schedule, ``augmentation_type`` (crop: random crop +
horizontal flip; crop_color: + hue/saturation/lightness jitter; crop_color_transform: + rotation,
shear, aspect change) and early stopping on validation accuracy::

    input (C,H,W), normalised with the ImageNet channel means/stds
    -> average-pool stem by s = max(1, min(H,W) // 32)   (224x224 -> 32x32; 32x32 unchanged)
    -> conv 3x3, 16 filters, same padding, no bias -> batch norm -> ReLU
    -> adaptive average pool to an 8x8 grid
    -> fully connected -> softmax over num_classes

The model directory has the real artifact names (what a model.tar.gz from AWS contains), holding
local formats - nothing pickled, nothing executable:

* ``image-classification-symbol.json`` - JSON description of the network above (layer list,
  num_classes, image_shape, normalisation, the hyperparameters used); not an MXNet symbol.
* ``image-classification-NNNN.params`` - the weights as a numpy ``.npz`` archive (``allow_pickle``
  off when read); NNNN is the 1-based epoch of the best validation accuracy, or, with
  ``checkpoint_frequency``, every k-th epoch (serving loads the highest-numbered file).
* ``model-shapes.json`` - ``[{"name": "data", "shape": [1, C, H, W]}]`` as MXNet writes it.

Inference: one JPEG/PNG image per request (``application/x-image``, ``image/jpeg``, ``image/png``);
the response is the JSON list of the class probabilities (``[0.1, 0.7, 0.2]``), or with
``Accept: application/jsonlines`` one line ``{"prediction": [...]}``. In batch transform
(``SAGEMAKER_BATCH=true``) a request without an Accept gets the JSON Lines form, as the guide says
("JSON Lines text format for batch transform") and the lst-format notebook reads the
``.out`` files (``data["prediction"]``). Bytes that are not an image -> 400.

The parts (``python -m localmaker.builtins.image_classification train|serve`` runs :mod:`.__main__`):

* :mod:`.data` - reading the training channels and request payloads.
* :mod:`.model` - the model and its file, shared by training and serving.
* :mod:`.training` - hyperparameters, the algorithm and the ``train`` entry point.
* :mod:`.serving` - loading the model and answering ``/invocations``.
"""

from __future__ import annotations

import os

# The network's matrices are small (27 x 16 conv weights): BLAS threads buy nothing and, on a shared
# machine, oversubscribe the cores (measured 7x slower under load). Set before numpy loads BLAS.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from .data import (  # noqa: E402
    IMAGE_TYPES,
    RECORDIO_TYPE,
    check_channels,
    decode_image,
    load_previous,
    load_split,
    normalise,
)
from .model import (  # noqa: E402
    AUX_NAMES,
    BN_EPS,
    BN_MOMENTUM,
    FILTERS,
    GRID,
    MEAN_RGB,
    NUM_LAYERS,
    PARAM_NAMES,
    PREFIX,
    SHAPES_FILE,
    STD_RGB,
    STEM_TARGET,
    SYMBOL_FILE,
    Net,
    load_model,
    log,
    pool_matrix,
    stem_factor,
)
from .serving import JSON_TYPE, JSONLINES_TYPE, invoke, serve  # noqa: E402
from .training import (  # noqa: E402
    BATCH_LOG_EVERY,
    SPEC,
    Optimizer,
    augment,
    parse_image_shape,
    parse_steps,
    save_params,
    topk_hits,
    train,
    validate_hyperparameters,
)

__all__ = [
    'AUX_NAMES',
    'BATCH_LOG_EVERY',
    'BN_EPS',
    'BN_MOMENTUM',
    'FILTERS',
    'GRID',
    'IMAGE_TYPES',
    'JSONLINES_TYPE',
    'JSON_TYPE',
    'MEAN_RGB',
    'NUM_LAYERS',
    'Net',
    'Optimizer',
    'PARAM_NAMES',
    'PREFIX',
    'RECORDIO_TYPE',
    'SHAPES_FILE',
    'SPEC',
    'STD_RGB',
    'STEM_TARGET',
    'SYMBOL_FILE',
    'augment',
    'check_channels',
    'decode_image',
    'invoke',
    'load_model',
    'load_previous',
    'load_split',
    'log',
    'normalise',
    'parse_image_shape',
    'parse_steps',
    'pool_matrix',
    'save_params',
    'serve',
    'stem_factor',
    'topk_hits',
    'train',
    'validate_hyperparameters',
]
