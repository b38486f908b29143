"""Every page and picture: it takes scores and renders them, it never trains or predicts.

    html          the page skeleton, escaping, embedded images, thumbnails
    cards         what a Run, an Audit and Predictions show in a notebook
    run_report    report.html of a run, and the sections every scored set gets
    evaluation_page  the page and the lines of a labelled set a run was scored on
    audit_report  audit.html
    compare       compare_runs: the settings that differ and the figures, as a table and bars
    plots         matplotlib figures

Imports only from `training`, `grouping`, `models`, `data` and the shared modules.
"""
