# The image every Kubeflow step runs in (`usermodel compile --image`, default usermodel-tfx:latest).
# TFX's own image already holds TFX, TensorFlow, Beam, TFT, TFMA and ml-metadata of the pinned
# release; this adds the project and the libraries that image lacks, pinned by requirements.lock.
#   docker build -t usermodel-tfx:latest .     then push it where the cluster pulls images from.
# The project must stay at /usermodel-tfx: the compiled spec reads the schema from there
# (pipeline/kubeflow_runner.py: IMAGE_PROJECT_DIR).
ARG TFX_IMAGE=tensorflow/tfx:1.21.0
FROM ${TFX_IMAGE}
WORKDIR /usermodel-tfx
COPY requirements.lock setup.py ./
COPY components components
COPY pipeline pipeline
COPY serving serving
COPY trainer trainer
RUN pip install --no-cache-dir -c requirements.lock tensorflow-text keras-rs tensorflow-serving-api \
    && pip install --no-cache-dir --no-deps .
