/* The smallest guest: one write through stdio, exit code 0. */
#include <stdio.h>

int main(void)
{
    printf("hello, world\n");
    return 0;
}
