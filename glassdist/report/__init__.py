"""The report: the paper's tables and figures from a campaign's store (``glassdist report DIR``).

``paper_values`` holds the paper's numbers; ``context`` what every artefact reads; ``tables``
and ``figures`` make one artefact each; ``build`` lists them and writes ``DIR/report/index.html``.
"""
