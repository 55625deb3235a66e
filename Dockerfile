# CUDA PyTorch image with prizenet installed; train.py is the entry point, data lives in /data.
#   docker build -t prizenet .
#   docker run --gpus all -v /path/to/datasets:/data -v $PWD/outputs:/opt/prizenet/outputs \
#       prizenet data=netflix model=svd           # reads /data/netflix (the original layout)
# /data/netflix, /data/netflix-prize-data (Kaggle) and /data/ml-* are where conf/data/*.yaml
# look (PRIZENET_DATA); MovieLens is downloaded there when absent. Caches go to /data/.prizenet_cache.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
WORKDIR /opt/prizenet
COPY pyproject.toml README.md train.py ./
COPY prizenet ./prizenet
COPY conf ./conf
COPY scripts ./scripts
# (no [cuda] extra: the base image's torch brings the triton it was built with; asking pip for
# another would fight torch's pin)
RUN pip install --no-cache-dir -e ".[sweep]"
ENV PRIZENET_DATA=/data PRIZENET_CACHE=/data/.prizenet_cache
VOLUME /data
ENTRYPOINT ["python", "train.py"]
