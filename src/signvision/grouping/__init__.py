"""Which images are "the same photo", and what that means for a split: the package's honest validation.

    fingerprints  the 16x16 zero-mean thumbnail, the mutual-nearest-neighbour search and the tiny-image rule
                  that both detectors below share
    groups        one way to join groups and one encoding of "no group"
    nearcopies    fast, recall-first groups of near copies and clips; the leak check and memory baseline
    verify        the audit's careful version: copies verified pixel by pixel, star groups and sequences
    splits        make_split (groups on one side), SplitInfo, read_split

Imports only from `models`, `data` and the shared modules.
"""
