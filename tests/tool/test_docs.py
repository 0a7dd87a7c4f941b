"""The README points at the code: every line link names the function on that line, every file
named in the reading order exists with the line count given."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_line_links_point_at_the_function_they_name():
    links = re.findall(r"\[`([\w.]+)`\]\(([\w/]+\.py)#L(\d+)\)", readme())
    assert len(links) > 20
    for name, path, line in links:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            text = f.readlines()[int(line) - 1]
        assert re.match(rf"\s*(def|class) {re.escape(name.split('.')[-1])}\b", text), (name, path, line)


def test_the_reading_order_gives_each_teaching_file_its_length():
    for path, lines in re.findall(r"\| \[`(\w+\.py)`\]\(\w+\.py\) \| ([\d,]+) \|", readme()):
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            assert len(f.readlines()) == int(lines.replace(",", "")), path
