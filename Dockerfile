# CUDA PyTorch image with prizenet installed; mount your data at /data.
#   docker build -t prizenet .
#   docker run --gpus all -v /path/to/netflix:/data/netflix prizenet /data/netflix
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
WORKDIR /opt/prizenet
COPY pyproject.toml README.md ./
COPY prizenet ./prizenet
COPY scripts ./scripts
RUN pip install --no-cache-dir -e .
ENV PRIZENET_DATA=/data PRIZENET_CACHE=/data/.prizenet_cache
VOLUME /data
# The data command until the trainer (train.py) lands; it then becomes the entry point.
ENTRYPOINT ["python", "scripts/prepare_data.py"]
