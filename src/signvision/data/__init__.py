"""Files on disk -> tables of paths and labels -> uint8 arrays -> batches.

    tables    the layouts (Zindi, class folders, split folders, CSV, DataFrame) -> DataTable
    images    safe decoding (size bounds, EXIF, bombs, Motion Photos), resizing
    cache     every image decoded once (RAM or a disk memmap)
    dataset   ImageDataset, make_loader, ShardSampler (torch is imported here only)
    threads   how many threads a pool of CPU work may use

The lowest layer: it imports nothing of signvision but errors, files, config and progress.
"""
