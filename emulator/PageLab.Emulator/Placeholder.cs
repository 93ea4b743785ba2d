namespace PageLab.Emulator;
