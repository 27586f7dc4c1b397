"""The data formats SageMaker algorithms read, shared by the pipeline and the local SageMaker.

A leaf package: ``include/mlpipeline`` (the ETL writes training data, the evaluation reads it) and
``localmaker`` (batch transform splits records, the built-in algorithm images read and answer them)
both import it, and it imports neither of them, nor anything heavy at import time (numpy, pandas and
Pillow are imported inside the functions that need them). One reader + writer pair per format:

* :mod:`.csv` - label-first, header-less CSV (BYOC regressor, XGBoost, Linear Learner...)
* :mod:`.recordio` - RecordIO-wrapped ``aialgs.data.Record`` protobuf (built-in algorithms'
  ``application/x-recordio-protobuf``); the message classes are :mod:`.record_pb2`, generated from
  SageMaker's ``record.proto`` (kept next to it)
* :mod:`.imagelist` - ``.lst`` image lists and PNG/JPEG files (image classification's image format)
"""
