"""The tool around the method: what train.py and analyze.py need to run for real, and nothing a
reader needs to learn the method. It imports the method's modules (lstm_memory, word2vec, corpus);
they never import it.

  cli.py          option types and ranges, the device, Ctrl-C as a flag, exit statuses
  parallel.py     the streams of a window or a sweep split among CPU threads
  files.py        files written whole (temporary name, then rename)
  checkpoints.py  one .npz per LM, foreign or broken files refused in one sentence
  training.py     a training run's start, resume, saves and messages
  analysis.py     analyze.py's inputs checked before the long work; the sweep cache
  outputs.py      figures, tables and results.json
  sentences.py    one sentence's memory as a picture (analyze.py --sentence)
  corpora.py      every corpus name behind one call
  own_text.py     the user's CoNLL-U or word/TAG files and class files
  languages.py    the planted-memory language and the tests' toy language
"""
