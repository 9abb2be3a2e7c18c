"""antisym: AntisymmetricRNN (Chang, Chen, Haber, Chi; ICLR 2019) reproduced end to end."""

__version__ = "0.1.0"
