"""Run the hub's worker pool (the same as `hub worker`)."""
from hub.cli import main

if __name__ == "__main__":
    main(["worker"])
