/* placeholder until the command line lands */
#include <stdio.h>
int main(void)
{
	puts("greyspf " GREYSPF_VERSION);
	return 0;
}
