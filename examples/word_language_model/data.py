"""Word-level corpus: a vocabulary and the token ids of train / valid / test text."""
import os
from io import open

import shendu as torch


class Dictionary(object):
    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word):
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self):
        return len(self.idx2word)


class Corpus(object):
    """``path`` is a folder with train.txt, valid.txt and test.txt (the wikitext-2 layout), or
    one text file whose lines are split 80 / 10 / 10 into the three."""

    def __init__(self, path):
        self.dictionary = Dictionary()
        if os.path.isdir(path):
            texts = [self.read(os.path.join(path, name))
                     for name in ('train.txt', 'valid.txt', 'test.txt')]
        else:
            lines = self.read(path)
            cut1, cut2 = int(0.8 * len(lines)), int(0.9 * len(lines))
            texts = [lines[:cut1], lines[cut1:cut2], lines[cut2:]]
        self.train, self.valid, self.test = (self.tokenize(t) for t in texts)

    @staticmethod
    def read(path):
        assert os.path.exists(path), path
        with open(path, 'r', encoding="utf8") as f:
            return f.readlines()

    def tokenize(self, lines):
        """Tokenizes a list of lines: every word, and <eos> at each line end."""
        idss = []
        for line in lines:
            words = line.split() + ['<eos>']
            ids = [self.dictionary.add_word(word) for word in words]
            idss.append(torch.tensor(ids).type(torch.int64))
        return torch.cat(idss)
