# Turns a text file into a C header holding it as a NUL-terminated char array, so the
# binary carries its Python runner and needs no file beside it.
# Usage: cmake -DINPUT=file -DOUTPUT=header -DNAME=symbol -P embed_file.cmake
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" hex "${hex}")
file(WRITE "${OUTPUT}" "/* Generated from ${INPUT} by cmake/embed_file.cmake. Do not edit. */\n"
     "static const char ${NAME}[] = {\n${hex}0x00};\n")
