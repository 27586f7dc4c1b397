"""Data formats SageMaker algorithms read, one reader + writer pair per format.

* :mod:`.csv` - label-first, header-less CSV (BYOC regressor, XGBoost, Linear Learner...)
* :mod:`.recordio` - RecordIO-wrapped ``aialgs.data.Record`` protobuf (built-in algorithms'
  ``application/x-recordio-protobuf``)
* :mod:`.imagelist` - ``.lst`` image lists and PNG/JPEG files (image classification's image format)
"""
