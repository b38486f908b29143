"""`sv.audit`: what is wrong with a folder of labelled images.

    audit    Audit, audit(), run_audit: copies, clips, conflicts, broken files; clean.csv and audit.html
    labels   the out-of-fold mislabel model and cleanlab

Imports only from `reports`, `training` and the layers beneath.
"""
