"""Teacher batch mode: one paper per student from a class roster, and a whole class marked at once.

- `roster`: read a class list (a plain CSV, or a Moodle or Canvas export as it is).
- `secret`: the course secret, and the per-student seeds and variant codes derived from it.
- `names`: student ids turned into safe file names.
- `manifest`: the versioned record of a batch folder, used to resume and to check files.
- `generate`: build every student's paper, answer file and key, in parallel and resumably.
- `booklet`: each student's key PDF, and the booklet that joins them.
- `submissions`: find the answer files that students hand in, and read each one.
- `mark`: match, mark and flag copying; compare marks with an earlier gradebook.
- `report`: the gradebook and problems CSV files, and the class report with plots.
- `results`: write the results folder, keeping the previous gradebook.
"""
