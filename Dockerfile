# CUDA PyTorch image with prizenet installed (torch 2.5.1, CUDA 12.4, cuDNN 9: the base image's).
#   docker build -t prizenet .
#   docker run --gpus all -v /path/to/datasets:/data:ro -v $PWD/runs:/work prizenet data=netflix model=svd
#   docker run --entrypoint prizenet -v $PWD/runs:/work prizenet blend multirun/DATE/TIME_TAG
#   docker run --entrypoint prizenet -p 8000:8000 -v $PWD/contest:/work prizenet \
#       judge serve --answers answers.csv --db sqlite:////work/contest.db --host 0.0.0.0   # the judging service
# /data (read-only is fine) holds the datasets where conf/data/*.yaml look (PRIZENET_DATA):
# /data/netflix (the original layout), /data/netflix-prize-data (Kaggle), /data/ml-*.
# /work is the working folder: outputs/, multirun/, blends/ and the data caches
# (PRIZENET_CACHE=/work/.prizenet_cache) land there and outlive the container. MovieLens is
# downloaded into /data when absent, which needs /data writable.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
COPY pyproject.toml README.md LICENSE train.py /opt/prizenet/
COPY prizenet /opt/prizenet/prizenet
COPY conf /opt/prizenet/conf
# A plain (not editable) install: the configs ship inside the package, the commands
# prizenet-train and prizenet work from any folder. (No [cuda] extra: the base image's torch
# brings the triton it was built with; asking pip for another would fight torch's pin.)
# The judge and postgres extras: the same image runs a contest's judging service.
RUN pip install --no-cache-dir "/opt/prizenet[sweep,judge,postgres]"
ENV PRIZENET_DATA=/data PRIZENET_CACHE=/work/.prizenet_cache
WORKDIR /work
VOLUME ["/data", "/work"]
EXPOSE 8000
ENTRYPOINT ["prizenet-train"]
