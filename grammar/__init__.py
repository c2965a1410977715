"""The grammar of the .snn language (grammar/qgen.lark), installed as the package qgen.grammar."""
